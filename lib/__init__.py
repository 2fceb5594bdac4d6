"""Plain, importable modules behind the dial-status dashboard (no Streamlit UI code here)."""
