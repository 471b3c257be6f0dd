"""What only the Streamlit pages use: widgets and session state (ui), cached loading (cache),
charts, tables, the comparison views, the jobs the app starts, and image overlays.

Nothing in the core (tinyvit.models, .data, .training, .runs, .inference, .explain) imports
this package; the modules here that need Streamlit or plotly import it themselves, so this
file imports nothing."""
