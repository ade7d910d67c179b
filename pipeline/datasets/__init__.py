"""The datasets' list files → manifest rows, and the label arrays built from them."""
