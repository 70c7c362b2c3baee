"""Blockwise repair: the repair plan, blocks of sections, the repairers that fill them and the executors that
run them (in this process, over worker processes, or with daisy)."""
