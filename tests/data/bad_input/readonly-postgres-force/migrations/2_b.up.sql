CREATE TABLE b (i int);
