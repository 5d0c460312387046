"""Optional language-model helper, gated by a qualification on this box.

    helper.py      what the dialogue calls: DialogueHelper, NoHelper, GatedHelper, open_helper
    qualify.py     scoring on the evaluation set, the stored verdicts, helper_status (setup page)
    background.py  the core's qualification pass, in a thread beside the calls
    evalset.py     the French evaluation set (intents with ASR errors, message summaries)
    tasks.py       prompts and JSON schemas of the two tasks      guard.py  the summary guard
    base.py        the LanguageModel boundary and its error codes settings.py  the [llm] table
    llama.py       llama.cpp on the box                           server.py an OpenAI-compatible server
    pool.py        the models this process has opened, shared by the helper and the pass
"""
