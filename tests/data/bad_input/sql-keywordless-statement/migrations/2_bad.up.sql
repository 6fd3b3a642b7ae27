xyzzy;
