"""Cross-encoder training (the package `rerankforge.training`, from the folder train/): config, data, model,
losses, the accelerate loop, the end of a run, dev split, card and Hub. The public API's call is
`rerankforge.train(...)` (train/cli.py `train_with`)."""
