"""``openlfr demo``'s parts: public-domain portraits shipped by installed packages
(``portraits``), the pass-by clip made from them (``clip``), and the loop run over it
(``loop``): accounts, a watchlist, a deployment planned, authorised and run, its alert left
for review, all in a data directory of its own."""
