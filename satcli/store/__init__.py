"""The HDF5 result store: layout in docs/store-format.md."""
