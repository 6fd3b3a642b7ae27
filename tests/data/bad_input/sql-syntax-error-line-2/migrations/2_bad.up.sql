CREATE TABLE a (i int);
CREATE TABLEE b (i int);
