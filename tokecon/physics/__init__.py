"""The physics: specs, parameter counts, operations (FLOP, bytes), roofline times, phases, memory, efficiency, communication."""
