-- copied from 2 and not edited: drops a's trigger, leaves b's
DROP TRIGGER IF EXISTS a_touch;
