"""The app's pages, one module each; `page()` draws it. app.py routes to them through
tinyvit.app.navigation, which lists their titles and icons."""
