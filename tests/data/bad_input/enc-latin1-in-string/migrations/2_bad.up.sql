CREATE TABLE a (t text);
INSERT INTO a VALUES ('café');
