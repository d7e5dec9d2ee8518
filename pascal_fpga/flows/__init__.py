"""The orchestration above the models: compile, verify, simulate, synth and the demo, one module
each, as the command line runs them."""
