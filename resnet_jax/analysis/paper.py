"""The paper's reported numbers, for tables that put ours beside them (Table 6 and Sec 4.2)."""

# Table 6: CIFAR-10 test error (%) and the parameter counts (exact, option A) the rounded column stands for.
TABLE6 = {
    20: {"params": 269_722, "params_paper": "0.27M", "error": 8.75},
    32: {"params": 464_154, "params_paper": "0.46M", "error": 7.51},
    44: {"params": 658_586, "params_paper": "0.66M", "error": 7.17},
    56: {"params": 853_018, "params_paper": "0.85M", "error": 6.97},
    110: {"params": 1_727_962, "params_paper": "1.7M", "error": 6.43, "error_mean_std": (6.61, 0.16)},
    1202: {"params": 19_421_274, "params_paper": "19.4M", "error": 7.93},
}
# Multiply-adds per 32x32 image (Sec 4.2 figures, in millions).
CIFAR_MULT_ADDS_M = {20: 40.6, 32: 68.9, 44: 97.2, 56: 125.5, 110: 252.9, 1202: 2830.0}
