/*
 * bench_json_simdjson.cpp - the simdjson On-Demand side of bench_json.c:
 * the same body, read as {"input": [numbers]}, summed in document order.
 * A C interface, so bench_json.c stays C.
 */
#include <simdjson.h>

#include <cstddef>
#include <new>
#include <vector>

#include "bench_json_simdjson.h"

struct bench_simdjson {
    simdjson::ondemand::parser parser;
};

extern "C" struct bench_simdjson *bench_simdjson_new(void)
{
    return new (std::nothrow) bench_simdjson();
}

extern "C" void bench_simdjson_free(struct bench_simdjson *b)
{
    delete b;
}

extern "C" const char *bench_simdjson_implementation(void)
{
    return simdjson::get_active_implementation()->name().c_str();
}

extern "C" int bench_simdjson_sum(struct bench_simdjson *b, const char *buf,
                                  size_t len, size_t cap, bool store,
                                  double *ret_sum, size_t *ret_n)
{
    simdjson::padded_string_view view(buf, len, cap);
    simdjson::ondemand::document doc;
    simdjson::ondemand::array arr;
    std::vector<double> v;
    double sum = 0;
    size_t n = 0;

    if (b->parser.iterate(view).get(doc) != simdjson::SUCCESS)
        return -1;
    if (doc["input"].get_array().get(arr) != simdjson::SUCCESS)
        return -1;
    if (store) {
        /* counted first, as simdjson's documentation advises for filling
           a vector: one allocation of the right size, no copies */
        if (arr.count_elements().get(n) != simdjson::SUCCESS)
            return -1;
        v.reserve(n);
    }
    for (auto e : arr) {
        double x;

        if (e.get_double().get(x) != simdjson::SUCCESS)
            return -1;
        if (store)
            v.push_back(x);
        else
            sum += x;
        n += !store;
    }
    for (double x : v)
        sum += x;
    *ret_sum = sum;
    *ret_n = store ? v.size() : n;
    return 0;
}
