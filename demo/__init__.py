"""The bundled demo city: its day of readings and reports, for `citywarn run --demo` and the tests."""
