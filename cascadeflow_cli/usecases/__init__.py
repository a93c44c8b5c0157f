"""Use cases: one plain function per user-level action (run a request or a batch,
budget status and outlook, forecast or anomalies for users, usage, calibrate, import,
export), each returning dataclasses or the core's own result types.

The layer between the shells (cli, server) and the core: it composes the engine, the
ledger and the pure packages (analytics, quality); it never prints, never exits and
never parses command-line text. Its modules import their heavy dependencies inside the
functions, so importing a use case costs nothing at CLI start-up."""
