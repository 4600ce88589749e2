"""EFE's Streamlit app: ``streamlit run apps/streamlit_app.py`` (or ``efe app``).

The page lives in ``efe_langchain/ui/app.py`` so that it ships with the installed package and
``efe app`` finds it without a checkout; this file runs that same page.
"""

from efe_langchain.ui.app import main

main()
