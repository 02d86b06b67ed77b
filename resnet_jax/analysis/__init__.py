"""Analysis tools: model complexity (Table 1/6 columns), layer responses (Fig 7), plots."""
