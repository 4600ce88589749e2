"""The Streamlit app's pieces: the page (``app.py``), what it builds and asks of the agent
(``agent_setup.py``), the conversation as the user sees it (``transcript.py``) and its drawing
with Streamlit elements (``render.py``).

Only ``app.py`` and ``render.py`` import streamlit; the rest is plain Python that tests can use
without a running app.
"""
