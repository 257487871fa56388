"""Developer tools for the framegen checkout. Run them from the checkout root
(`python -m tools....`); they are not part of the installed `framegen` package."""
