CREATE TABLE c (i int);
