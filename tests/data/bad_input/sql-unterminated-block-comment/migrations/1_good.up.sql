CREATE TABLE good (i int);
