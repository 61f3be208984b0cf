"""One evaluation job: the lm-eval run of one model variant and its score files."""
