CREATE TABLE a (i int);
SELECT pg_sleep(5);
