"""The tools that build and evaluate the bundled `demo` model: procedural scenes
(`scenes`), its tokenizer (`tokenizer`), training from scratch (`train`), fine-tuning
(`finetune`) and the consistency evaluation (`evaluate`).

Run from the checkout root, e.g. `python -m tools.demo.train --help`; not installed.
The installed package keeps only the loading code and the weights (`framegen.models.demo`).
"""
