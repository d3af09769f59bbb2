"""The sandbox's own page (`sandbox ui`): a small web server on 127.0.0.1, behind a per-sandbox token, that shows
the stack, the trust map, doctor's verdicts and the scenario catalogue live, and runs a smoke or a scenario from a
button. It runs on the host whatever the runtime, starts with the stack (`up`) and stops with it (`down`)."""
