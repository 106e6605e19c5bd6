-- A script that forgets jsr.open: rmtree must refuse rather than guess a root.
local jsr = require "jsr"
assert(jsr.rmtree((...) .. "/jetstream/$SYS"))
