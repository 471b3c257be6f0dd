"""Command-line tools built on the core: the speed benchmark (bench), the demo-run builder
(demo) and the recipe and data-scaling studies (study). Each runs as `python -m tinyvit.tools.NAME`."""
