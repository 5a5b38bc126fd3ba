"""For the worked problems: the exercise sheet's numbers (``sheet``) and the interactive explorers (``explorers``);
for the problem sets: each student's own numbers, derived from her student id (``variants``)."""
