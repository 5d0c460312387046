"""Optional language-model helper: protocol, llama.cpp runner, qualification."""
