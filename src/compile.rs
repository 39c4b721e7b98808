//! Compiles a validated design into candle modules on the encoder.
