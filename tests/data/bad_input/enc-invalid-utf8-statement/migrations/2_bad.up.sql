CREATE TABLE a (i int);
ÿþ;
