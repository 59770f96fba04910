// The top of childflow: parse, then dispatch to run / doctor / report / dump.
#pragma once

namespace cf::app {

int main(int argc, char** argv);

}  // namespace cf::app
