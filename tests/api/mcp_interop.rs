//! Interoperability with MCP clients written elsewhere (filled in by the interop work).
