package web

// Static lets the external tests compare served files with the embedded ones.
var Static = static
