CREATE TABLE a (i int);
not sql at all