// childflow: parse the command line, then hand over to the mode it selects.
#include "app/app.hpp"

int main(int argc, char** argv) { return cf::app::main(argc, argv); }
