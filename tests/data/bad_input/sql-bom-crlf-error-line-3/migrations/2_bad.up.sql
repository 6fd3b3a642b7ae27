CREATE TABLE a (i int);
CREATE TABLE b (i int);
CREATE TABLEE c (i int);
