CREATE TABLE a (i int);
xyzzy;
