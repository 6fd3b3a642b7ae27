CREATE TABLE crlf (x int);
INSERT INTO crlf VALUES (1);
-- no newline at the end