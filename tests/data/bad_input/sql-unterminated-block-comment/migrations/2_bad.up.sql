CREATE TABLE a (i int);
/* never closed
CREATE TABLE b (i int);
