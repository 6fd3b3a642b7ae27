CREATE TABLE a (i int);
CREATE ﻿TABLE b (i int);
