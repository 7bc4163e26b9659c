"""`callcue report`: one self-contained HTML file (and CSV tables) from central stores.

queries.py (every aggregation, in SQL that PostgreSQL runs too), charts.py (matplotlib,
SVG backend, inlined), page.py (the HTML: tables, sections, the little sorting script),
i18n.py (English and Chinese labels), build.py (stores -> figures -> files).
"""
