CREATE TABLE a (t text);
INSERT INTO a VALUES ('never closed);
CREATE TABLE b (i int);
