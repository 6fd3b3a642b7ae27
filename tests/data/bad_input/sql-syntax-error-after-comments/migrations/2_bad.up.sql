-- a comment; with a semicolon
/* and a
   block; comment */
CREATE TABLE a (i int);

  SELEC 1;
