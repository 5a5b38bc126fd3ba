"""For the worked problems: the exercise sheet's numbers (``sheet``) and the interactive explorers (``explorers``)."""
