"""What the pages show: filters, metrics (DuckDB SQL), chart builders and Streamlit helpers."""
