CREATE TABLE a (i int);
-- ÿþ
CREATE TABLE b (i int);
