"""The ground floor: plumbing every stage uses -- errors, hardware and precision, config files, the command-line
framework, console and progress, atomic files, offline mode and model resolution, the LLM client. It imports no
stage."""
