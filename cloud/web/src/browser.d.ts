// Browser globals the console's pages use beyond the DOM: uPlot (the
// vendored /assets/uplot.js, a classic script) and Stripe.js (loaded only
// when card payments are configured). For tsc only (scripts/console-types).
interface Window {
  uPlot?: any;
  Stripe?: any;
}
