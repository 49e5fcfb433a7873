"""The umbrella command line `rerankforge` and the demo: above the stages, gathering their commands."""
