"""Economics: USD per GPU-hour (rental or TCO), dated prices, USD per million tokens, energy, fleets, sensitivities."""
