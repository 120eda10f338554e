"""The benchmark (`python -m bench`): Floe's tick against the floor and the usual COPY-on-a-warehouse
loader, over the local stack with a modelled Snowflake latency. See docs/benchmarks.md."""
