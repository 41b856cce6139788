"""The routing engine: matches waiting conversations to eligible agents.

The core works on plain data and a clock passed in, so the server and the simulator run
the same code. It reads and writes the store only through ``inbox`` actions.
"""
